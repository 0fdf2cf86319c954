"""hello: the ship-action example service."""
