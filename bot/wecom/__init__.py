"""WeCom protocol layers, as in wechatpy: crypto (pure) → parser (typed) → async clients."""
