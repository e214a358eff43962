"""``mlhunt run``: one system, every part, cross-linked into one verdict per threat."""
