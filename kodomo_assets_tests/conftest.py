from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

JUMIN_HEADER = ("宛名番号,世帯番号,個人番号,氏名,氏名カナ,生年月日,性別,続柄,住所,町丁目コード,"
                "住民種別,住民となった年月日")


@pytest.fixture(autouse=True)
def pseudonym_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own demo key, outside KODOMO_HOME, never the developer's own."""
    path = tmp_path / "secrets" / "pseudonym.key"
    monkeypatch.delenv("KODOMO_PSEUDONYM_KEY", raising=False)
    monkeypatch.delenv("KODOMO_CENTER_KEY", raising=False)
    monkeypatch.setenv("KODOMO_CENTER_KEY_FILE", str(path.with_name("center.key")))
    monkeypatch.delenv("KODOMO_POLICY", raising=False)
    monkeypatch.setenv("KODOMO_KEY_FILE", str(path))
    monkeypatch.setenv("KODOMO_DEMO", "1")
    return path


@pytest.fixture
def kodomo_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """A private inbox and home for one test."""
    inbox, home = tmp_path / "inbox", tmp_path / "home"
    inbox.mkdir()
    monkeypatch.setenv("KODOMO_INBOX", str(inbox))
    monkeypatch.setenv("KODOMO_HOME", str(home))
    return inbox, home


@pytest.fixture
def write_export(kodomo_env: tuple[Path, Path]) -> Callable[..., Path]:
    inbox, _ = kodomo_env

    def write(name: str, lines: list[str], month: str = "2022-10", encoding: str = "cp932",
              newline: str = "\r\n") -> Path:
        path = inbox / month / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes((newline.join(lines) + newline).encode(encoding))
        return path

    return write


@contextmanager
def demo_env(inbox: Path, factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """For module-scoped runs (set up before the autouse key fixture): a fresh home and key
    files outside it, demo mode, the given inbox. Yields (home, secrets)."""
    home, secrets = factory.mktemp("home"), factory.mktemp("secrets")
    with pytest.MonkeyPatch.context() as mp:
        for name, value in (("KODOMO_INBOX", inbox), ("KODOMO_HOME", home), ("KODOMO_DEMO", "1"),
                            ("KODOMO_KEY_FILE", secrets / "p.key"),
                            ("KODOMO_CENTER_KEY_FILE", secrets / "c.key")):
            mp.setenv(name, str(value))
        yield home, secrets
