"""Models of the gateway's clients, each written from its vendor's documented behaviour."""
