"""The report as PDF: the printable HTML page laid out by WeasyPrint (Pango, no browser).

The page is self-contained; the URL fetcher refuses every fetch, so a value that slipped into
the markup can never make the renderer reach the network or the file system.
"""

from __future__ import annotations

from typing import Any, NoReturn

from birthright.errors import ConfigError


def _refuse(url: str, *_args: Any, **_kwargs: Any) -> NoReturn:
    raise ValueError(f"the report renderer fetches nothing ({url[:64]})")


def render_pdf(html: bytes) -> bytes:
    try:
        import weasyprint
    except (ImportError, OSError) as e:  # OSError: Pango missing from the system
        raise ConfigError(
            "PDF reports need WeasyPrint and Pango (make setup installs both)",
            code="pdf_unavailable",
        ) from e
    document = weasyprint.HTML(string=html.decode(), url_fetcher=_refuse, base_url=None)
    pdf: bytes = document.write_pdf()
    return pdf
