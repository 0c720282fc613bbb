"""A local WeCom: signs and encrypts callbacks, serves the webhook and APIs, hosts the sandbox."""
