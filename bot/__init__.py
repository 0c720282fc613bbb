"""The WeCom bridge: signed callbacks in, rate-limited durable posts out."""
