"""HTTP routes. Thin: parse and authorize, call app.domain, shape the response."""
