"""A read-only web dashboard for searches: `nas dashboard DIR` serves it, `nas report DIR` writes it as one file.

`views` turns a workdir into the page's JSON, `server` answers the page over HTTP (GET only), and
`static_report` writes the same page with its data and plotly.js inlined.
"""
