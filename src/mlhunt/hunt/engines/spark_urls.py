"""Logs named by URL for the Spark engine: object storage (``s3a://``, ``abfss://``, ``gs://``),
HDFS, or ``file://`` on a filesystem every executor mounts.

A URL names a file, a folder (searched recursively for log files) or a glob, as a local path
does; Spark's own Hadoop filesystem client lists it, with the credentials and connector jars the
session was given (docs/spark.md), so what the driver lists is what the executors can read.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import Any

from mlhunt.errors import InputError
from mlhunt.hunt.readers import is_log_name

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
#: Files one URL may expand to (a bucket listing is bounded like any input).
MAX_FILES = 100_000


def is_url(item: str | Path) -> bool:
    return isinstance(item, str) and _URL.match(item) is not None


def split_urls(paths: str | Path | Sequence[str | Path]) -> tuple[list[str | Path], list[str]]:
    """(local paths, URLs) of what the user named, each in the given order."""
    items = [paths] if isinstance(paths, str | Path) else list(paths)
    return [p for p in items if not is_url(p)], [str(p) for p in items if is_url(p)]


def url_name(url: str) -> str:
    """The file name at the end of a URL (``s3a://b/day/x.jsonl.gz`` -> ``x.jsonl.gz``)."""
    return PurePosixPath(_URL.sub("", url, count=1)).name


def expand(spark: Any, urls: Sequence[str]) -> list[str]:
    """The log files the URLs name, listed by the session's Hadoop filesystems, in a stable
    order; a URL that names nothing is one line naming it."""
    jvm = spark.sparkContext._jvm
    conf = spark.sparkContext._jsc.hadoopConfiguration()
    out: list[str] = []
    for url in urls:
        try:
            path = jvm.org.apache.hadoop.fs.Path(url)
            fs = path.getFileSystem(conf)
            found = _list(fs, fs.globStatus(path), url)
        except InputError:
            raise
        except Exception as exc:  # no connector for the scheme, no credentials, no bucket ...
            line = next((ln for ln in str(exc).splitlines() if ln.strip()), type(exc).__name__)
            raise InputError(f"--engine spark: cannot list {url} ({line.strip()[:200]})") from None
        if not found:
            raise InputError("no log files (.jsonl, .csv, .parquet) there", file=url)
        out.extend(sorted(found))
    return list(dict.fromkeys(out))


def _list(fs: Any, statuses: Any, url: str) -> list[str]:
    found: list[str] = []
    for st in statuses or []:
        if st.isDirectory():
            it = fs.listFiles(st.getPath(), True)
            while it.hasNext():
                name = str(it.next().getPath().toString())
                if is_log_name(url_name(name)):
                    found.append(name)
                if len(found) > MAX_FILES:
                    raise InputError(f"more than {MAX_FILES:,} files", file=url)
        else:
            found.append(str(st.getPath().toString()))
    return found
