"""A folder of small documents in five formats, each about a different fictional animal.

``write_mixed_documents(folder)`` writes ``glimmerfox.txt``, ``quillhog.md``, ``tarn_owl.html``,
``moonhare.pdf`` (reportlab, a real text layer that pypdf extracts) and ``drumfrog.docx`` (python-docx) and
returns ``{filename: key sentence}``. Each key sentence is on one line / in one paragraph, so it appears
verbatim in the content of the Document that Haystack's converter for that format produces
(TextFileToDocument, MarkdownToDocument, HTMLToDocument, PyPDFToDocument, DOCXToDocument).

The animals, places and numbers are invented, so a retriever or a test can tell the files apart by any of
their words (e.g. "Which animal sings in deep caves?" -> drumfrog.docx). ``DOCUMENT_FACTS`` holds every
sentence per file, for tests that want more than the key sentence.
"""

from __future__ import annotations

import html
from pathlib import Path

DOCUMENT_FACTS: dict[str, dict[str, object]] = {
    "glimmerfox.txt": {
        "title": "The Glimmerfox",
        "key": "The glimmerfox of Vell sleeps in hollow birch trees.",
        "more": [
            "Its silver tail glows faintly on moonless nights.",
            "A glimmerfox litter usually has three kits.",
        ],
    },
    "quillhog.md": {
        "title": "The Marsh Quillhog",
        "key": "The marsh quillhog eats only blue reeds.",
        "more": [
            "Quillhogs shed their quills every autumn.",
            "The oldest known quillhog lived for 41 years.",
        ],
    },
    "tarn_owl.html": {
        "title": "The Copperwing Tarn Owl",
        "key": "The copperwing tarn owl hunts beetles at dawn.",
        "more": [
            "It nests on cliffs above mountain lakes.",
            "Its call sounds like a small bell ringing twice.",
        ],
    },
    "moonhare.pdf": {
        "title": "The Striped Moonhare",
        "key": "The striped moonhare can leap nine metres.",
        "more": [
            "Moonhares gather in rings of twelve when it snows.",
            "They are found only on the plateau of Orrin.",
        ],
    },
    "drumfrog.docx": {
        "title": "The Saltwater Drumfrog",
        "key": "The saltwater drumfrog sings in deep caves.",
        "more": [
            "Its song can be heard two kilometres away.",
            "Drumfrogs lay their eggs in tidal pools.",
        ],
    },
}


def write_mixed_documents(folder: Path) -> dict[str, str]:
    """Write one .txt, .md, .html, .pdf and .docx file to ``folder``; return filename -> key sentence."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    writers = {".txt": _write_txt, ".md": _write_md, ".html": _write_html, ".pdf": _write_pdf, ".docx": _write_docx}
    for name, facts in DOCUMENT_FACTS.items():
        writers[Path(name).suffix](folder / name, str(facts["title"]), [str(facts["key"]), *facts["more"]])
    return {name: str(facts["key"]) for name, facts in DOCUMENT_FACTS.items()}


def _write_txt(path: Path, title: str, sentences: list[str]) -> None:
    path.write_text(title + "\n\n" + "\n".join(sentences) + "\n", encoding="utf-8")


def _write_md(path: Path, title: str, sentences: list[str]) -> None:
    body = "\n\n".join(sentences)
    path.write_text(f"# {title}\n\n{body}\n\n- Habitat: marshland\n- Status: fictional\n", encoding="utf-8")


def _write_html(path: Path, title: str, sentences: list[str]) -> None:
    paragraphs = "\n".join(f"      <p>{html.escape(s)}</p>" for s in sentences)
    path.write_text(
        f"""<!DOCTYPE html>
<html lang="en">
  <head><meta charset="utf-8"><title>{html.escape(title)}</title></head>
  <body>
    <nav><a href="/">Home</a></nav>
    <article>
      <h1>{html.escape(title)}</h1>
{paragraphs}
    </article>
  </body>
</html>
""",
        encoding="utf-8",
    )


def _write_pdf(path: Path, title: str, sentences: list[str]) -> None:
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    pdf = canvas.Canvas(str(path), pagesize=A4, invariant=1)  # invariant: same bytes every run
    pdf.setTitle(title)
    text = pdf.beginText(72, A4[1] - 72)
    text.setFont("Helvetica-Bold", 16)
    text.textLine(title)
    text.setFont("Helvetica", 11)
    text.textLine("")
    for sentence in sentences:  # one sentence per line: short enough not to need wrapping
        text.textLine(sentence)
    pdf.drawText(text)
    pdf.showPage()
    pdf.save()


def _write_docx(path: Path, title: str, sentences: list[str]) -> None:
    import docx

    document = docx.Document()
    document.add_heading(title, level=1)
    for sentence in sentences:
        document.add_paragraph(sentence)
    document.save(str(path))
