"""Each language's words files (words.<code>.toml beside its examples): the negations, hedges, choice words
and plain yes and no that the dialogue's judge (ivr/line/dialogue/meaning.py) reads a language's sentences
by. Read here, once per process, and handed to the judge, so the dialogue itself touches no file."""

import threading
import tomllib
from pathlib import Path

from ivr.line.dialogue import meaning

HERE = Path(__file__).resolve().parent
_loaded: set[str] = set()
_lock = threading.Lock()


def words_file(language: str) -> Path:
    return HERE / f"words.{language}.toml"


def load_words(language: str) -> None:
    """Read a language's words file (once) and give it to the judge; a language with none has no words."""
    if language in _loaded or language == meaning.ENGLISH:  # English's words are the judge's own
        return
    with _lock:
        if language in _loaded:
            return
        path = words_file(language)
        if path.exists():
            try:
                table = tomllib.loads(path.read_text(encoding="utf-8"))
            except tomllib.TOMLDecodeError as error:
                raise meaning.WordsFileError(f"{path.name} is not valid TOML: {error}") from None
            meaning.use_words(language, table)
        _loaded.add(language)
