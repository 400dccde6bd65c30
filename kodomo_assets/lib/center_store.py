"""The center zone at rest: DuckDB files encrypted with a key derived from the center key.

Writing an encrypted DuckDB database needs DuckDB's crypto module; for duckdb 1.5.x the PyPI
package duckdb-extension-httpfs ships it as a file that is LOADed from the package folder,
so nothing is downloaded at run time. Reading needs only the key. Opening a center file
without the key fails ("Cannot open encrypted database"). The key goes into ATTACH only:
never into a log, metadata or an error message of ours.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from kodomo_assets.lib.publish import staged_file

ALIAS = "center"


def database_key(center_key: bytes) -> str:
    """A purpose-bound key for DuckDB, so the center key itself never reaches SQL."""
    return hmac.new(center_key, b"kodomo-center-duckdb-encryption", hashlib.sha256).hexdigest()


def load_crypto(con: duckdb.DuckDBPyConnection) -> None:
    import duckdb_extension_httpfs

    folder = Path(duckdb_extension_httpfs.__file__).parent / "extensions"
    ext = next(folder.glob(f"v{duckdb.__version__}/httpfs.duckdb_extension"), None)
    if ext is None:
        raise RuntimeError(f"duckdb-extension-httpfs が duckdb {duckdb.__version__} 用ではありません")
    con.execute(f"LOAD '{ext}'")


def _attach(con: duckdb.DuckDBPyConnection, path: Path, center_key: bytes, read_only: bool,
            alias: str = ALIAS) -> None:
    mode = ", READ_ONLY" if read_only else ""
    try:
        con.execute(f"ATTACH '{path}' AS {alias} (ENCRYPTION_KEY '{database_key(center_key)}'{mode})")
    except duckdb.Error as err:
        # DuckDB's message names the file, never the key; ours says what to do
        raise PermissionError(f"{path.name}: センター領域のファイルを開けません（センター鍵が違うか、"
                              f"ファイルが壊れています）: {type(err).__name__}") from None


@contextmanager
def open_center(path: Path, center_key: bytes, read_only: bool = True) -> Iterator[duckdb.DuckDBPyConnection]:
    if not path.exists():
        raise FileNotFoundError(f"{path} がありません")
    con = duckdb.connect()
    try:
        _attach(con, path, center_key, read_only)
        con.execute(f"USE {ALIAS}")
        yield con
    finally:
        con.close()


def attach_center(con: duckdb.DuckDBPyConnection, alias: str, path: Path, center_key: bytes) -> None:
    """Another center file, read-only, beside a connection's own databases."""
    if not path.exists():
        raise FileNotFoundError(f"{path} がありません（先に上流の資産を実体化してください）")
    _attach(con, path, center_key, read_only=True, alias=alias)


@contextmanager
def staged_center(final: Path, center_key: bytes) -> Iterator[tuple[duckdb.DuckDBPyConnection, Path]]:
    """Like publish.staged, but the staging file is encrypted; `promote` publishes it."""
    with staged_file(final) as stage:
        con = duckdb.connect()
        try:
            load_crypto(con)
            _attach(con, stage, center_key, read_only=False)
            con.execute(f"USE {ALIAS}")
            yield con, stage
        finally:
            con.close()
