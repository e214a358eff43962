"""``mlhunt assess``: attack the real model to prove or refute each ML threat."""
