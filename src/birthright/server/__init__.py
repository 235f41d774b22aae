"""The HTTP edge: app factory, schemas, routes. Thin: parse, call a use case, render."""
