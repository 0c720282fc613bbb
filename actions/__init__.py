"""qunzhu's custom actions: one module per feature, game state only through store.py."""
