"""mlhunt test suite (a regular package: some dependencies, e.g. diffprivlib, install a
top-level ``tests`` package that would otherwise shadow this folder)."""
