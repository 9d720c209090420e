"""The object store behind a shared warehouse: immutable Parquet files on S3 (or any pyarrow filesystem).

By default there is no store: the warehouse is the local folder (``$REPROLAB_WAREHOUSE`` or ``./warehouse``).
With ``REPROLAB_WAREHOUSE_URL=s3://bucket/prefix`` the store holds the truth and the local folder is this
machine's mirror of it: every table file written here is published to the store, and a file read here that
the mirror lacks is fetched from it first. The layout is the same on both sides,
``<group>/<asset>/<materialization id>.parquet``, and a file is never changed once written (each
materialization gets a new id), so a mirror can only lack files, never hold stale ones.

Every transfer goes through a pyarrow filesystem: ``S3FileSystem`` for ``s3://`` (credentials from the standard
``AWS_*`` variables; ``AWS_ENDPOINT_URL`` for an S3-compatible server such as MinIO) and ``LocalFileSystem``
for ``file://`` (a shared disk). A file lands whole or not at all: on S3 one PUT (or a completed multipart
upload) is atomic; on a file system it is written under a temporary name and renamed.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from resources.settings import ConfigurationError

STORE_ENV = "REPROLAB_WAREHOUSE_URL"
_COPY_CHUNK = 8 << 20


def default_store_url() -> str | None:
    """``$REPROLAB_WAREHOUSE_URL`` if set (the shared lab), else None (one machine, the default)."""
    return os.environ.get(STORE_ENV) or None


def active_store() -> TableStore | None:
    """The store named by ``$REPROLAB_WAREHOUSE_URL``, or None when it is not set."""
    url = default_store_url()
    return TableStore.from_url(url) if url else None


def _s3_filesystem():
    """pyarrow's S3 filesystem from the standard AWS variables (region, keys, and the endpoint of an S3-compatible
    server in ``AWS_ENDPOINT_URL_S3`` or ``AWS_ENDPOINT_URL``)."""
    from pyarrow import fs

    kwargs = {"region": os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"}
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if endpoint:
        parsed = urlparse(endpoint)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ConfigurationError(f"AWS_ENDPOINT_URL={endpoint!r} must be an http(s) URL, e.g. http://minio:9000")
        kwargs |= {"endpoint_override": parsed.netloc, "scheme": parsed.scheme}
    return fs.S3FileSystem(**kwargs)


@dataclass(frozen=True)
class TableStore:
    """Where the shared warehouse's table files live: ``url`` (as configured), a pyarrow filesystem and the base
    path inside it."""

    url: str
    filesystem: object
    base: str

    @classmethod
    def from_url(cls, url: str) -> TableStore:
        """``s3://bucket/prefix`` or ``file:///shared/warehouse``; anything else is a ConfigurationError."""
        from pyarrow import fs

        parsed = urlparse(url)
        if parsed.scheme == "s3" and parsed.netloc:
            base = f"{parsed.netloc}/{parsed.path.strip('/')}".rstrip("/")
            return cls(url.rstrip("/"), _s3_filesystem(), base)
        if parsed.scheme == "file" and parsed.netloc in ("", "localhost") and parsed.path.startswith("/"):
            return cls(url.rstrip("/"), fs.LocalFileSystem(), parsed.path.rstrip("/") or "/")
        raise ConfigurationError(
            f"{STORE_ENV}={url!r} is not a warehouse store: expected s3://<bucket>/<prefix> (S3 or an S3-compatible "
            "server, endpoint in AWS_ENDPOINT_URL) or file:///<absolute path> (a shared file system)")

    # -- names ----------------------------------------------------------------------------------------------
    def uri(self, group: str, asset: str, name: str) -> str:
        """The store URI of one table file: what the asset's ``path`` metadata records."""
        return f"{self.url}/{group}/{asset}/{name}"

    def _key(self, group: str, asset: str, name: str = "") -> str:
        return "/".join(p for p in (self.base, group, asset, name) if p)

    def holds(self, uri: str) -> bool:
        """Is ``uri`` a table file of this store (rather than of another store, e.g. the one a lab moved from)?"""
        try:
            self._parts(uri)
        except Exception:  # WarehouseError, imported lazily by _parts
            return False
        return True

    def _parts(self, uri: str) -> tuple[str, str, str]:
        """(group, asset, file name) of a URI in this store; WarehouseError for one elsewhere."""
        from resources.tables import WarehouseError

        rel = uri.removeprefix(self.url + "/") if uri.startswith(self.url + "/") else None
        parts = rel.split("/") if rel else []
        if len(parts) != 3 or not parts[2].endswith(".parquet"):
            raise WarehouseError(f"table file {uri} is not in this warehouse's store {self.url} "
                                 f"(expected {self.url}/<group>/<asset>/<id>.parquet; check {STORE_ENV})")
        return parts[0], parts[1], parts[2]

    # -- transfers ------------------------------------------------------------------------------------------
    def publish(self, local_file: Path) -> str:
        """Copy ``<root>/<group>/<asset>/<id>.parquet`` to the same place in the store; return its URI. A file
        already there is never overwritten (materialization ids are unique: a clash is an error)."""
        from pyarrow import fs

        from resources.tables import WarehouseError

        local_file = Path(local_file)
        group, asset, name = local_file.parent.parent.name, local_file.parent.name, local_file.name
        key = self._key(group, asset, name)
        if self.filesystem.get_file_info(key).type != fs.FileType.NotFound:
            raise WarehouseError(f"{self.uri(group, asset, name)} already exists: table files are immutable")
        local_fs = isinstance(self.filesystem, fs.LocalFileSystem)
        target = f"{self._key(group, asset)}/.{name}.{uuid.uuid4().hex}.tmp" if local_fs else key
        if local_fs:
            self.filesystem.create_dir(self._key(group, asset), recursive=True)
        try:
            with open(local_file, "rb") as src, self.filesystem.open_output_stream(target) as dst:
                while chunk := src.read(_COPY_CHUNK):
                    dst.write(chunk)
            if local_fs:
                self.filesystem.move(target, key)
        except OSError as exc:
            raise WarehouseError(f"cannot publish {local_file} to {self.uri(group, asset, name)}: {exc}") from exc
        finally:
            if local_fs and self.filesystem.get_file_info(target).type != fs.FileType.NotFound:
                self.filesystem.delete_file(target)
        return self.uri(group, asset, name)

    def listing(self, tables: Iterable[tuple[str, str]] | None = None) -> list[tuple[str, str, str]]:
        """(group, asset, file name) of every table file in the store, or of the given tables only."""
        from pyarrow import fs

        if tables is None:
            selectors = [(self.base, True)]
        else:
            selectors = [(self._key(group, asset), False) for group, asset in tables]
        found = []
        for base, recursive in selectors:
            infos = self.filesystem.get_file_info(fs.FileSelector(base, recursive=recursive, allow_not_found=True))
            for info in infos:
                rel = info.path.removeprefix(self.base.rstrip("/") + "/").split("/")
                if info.type != fs.FileType.File or len(rel) != 3 or not rel[2].endswith(".parquet"):
                    continue
                if rel[0][0] in "._" or rel[2].startswith("."):  # other stores and temporary files
                    continue
                found.append((rel[0], rel[1], rel[2]))
        return sorted(found)

    def fetch(self, uri: str, root: str | Path) -> Path:
        """The mirror's copy of the store file ``uri`` under ``root``, downloaded first if it is missing."""
        group, asset, name = self._parts(uri)
        return self._download(group, asset, name, Path(root))

    def _download(self, group: str, asset: str, name: str, root: Path) -> Path:
        from resources.tables import WarehouseError

        local = root / group / asset / name
        if local.exists():
            return local
        local.parent.mkdir(parents=True, exist_ok=True)
        tmp = local.parent / f".{name}.{uuid.uuid4().hex}.tmp"
        try:
            with self.filesystem.open_input_stream(self._key(group, asset, name)) as src, open(tmp, "wb") as dst:
                while chunk := src.read(_COPY_CHUNK):
                    dst.write(chunk)
            os.replace(tmp, local)
        except OSError as exc:
            raise WarehouseError(f"cannot fetch {self.uri(group, asset, name)} into {local}: {exc}") from exc
        finally:
            tmp.unlink(missing_ok=True)
        return local

    def sync(self, root: str | Path, tables: Iterable[tuple[str, str]] | None = None) -> list[Path]:
        """Download into the mirror at ``root`` every store file it lacks (all tables, or the given ones); return
        the files fetched. Files only ever get added, so this is safe to run from many processes at once."""
        root = Path(root)
        return [self._download(g, a, n, root) for g, a, n in self.listing(tables)
                if not (root / g / a / n).exists()]


__all__ = ["STORE_ENV", "TableStore", "active_store", "default_store_url"]
