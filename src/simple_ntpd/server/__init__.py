"""The server side: the pure per-request pipeline and its policies."""
