"""Protocol bindings: each turns its wire format into `Request` and renders `Response`."""
