"""Sphinx extension of the book (``sphinx.local_extensions`` in ``_config.yml``).

sphinx-thebe 0.3.1 adds its inline configuration script (``const THEBE_JS_URL = ...``)
once per read of the sources; after a full rebuild the pages declare the constant twice,
and the browser reports ``SyntaxError: Identifier 'THEBE_JS_URL' has already been
declared``. Each page's scripts are kept once, in their order.
"""

from __future__ import annotations


def _scripts_once(app, pagename, templatename, context, doctree) -> None:
    scripts = context.get("script_files")
    if scripts:
        kept = []
        for js in scripts:
            if js not in kept:
                kept.append(js)
        context["script_files"] = kept


def setup(app):
    app.connect("html-page-context", _scripts_once)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
