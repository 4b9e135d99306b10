"""The typical session in the background: `make up`, `make ps`, `make logs`, `make down`."""
