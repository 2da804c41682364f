"""docs/tcp.md shows the transition table exactly as the engine enforces it."""

from __future__ import annotations

from pathlib import Path

from usernet.stack.tcp.states import as_markdown

DOC = Path(__file__).resolve().parents[2] / "docs" / "tcp.md"


def test_transition_table_in_docs_matches_the_code():
    text = DOC.read_text()
    start = text.index("<!-- transitions:start -->") + len("<!-- transitions:start -->")
    end = text.index("<!-- transitions:end -->")
    assert text[start:end].strip() == as_markdown(), "regenerate the table in docs/tcp.md from states.as_markdown()"


def test_defaults_in_docs_match_the_config():
    import dataclasses

    from usernet.stack.tcp.config import TcpConfig

    text = DOC.read_text()
    for field in dataclasses.fields(TcpConfig):
        row = f"| `{field.name}` | {getattr(TcpConfig(), field.name)!r} |"
        assert row in text, f"docs/tcp.md lacks or misstates the default of {field.name}: expected {row}"
