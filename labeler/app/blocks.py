"""The Gradio review app: layout and event wiring. Gradio is imported here only.

The screen's buttons are plain HTML rendered by the handlers; ``review.js`` turns a key press or a
click into one command (naming the item on screen) and sends it through one hidden button, so the
whole app has one event path: ``ReviewUI.handle``.
"""

from __future__ import annotations

import html
import json
import os
from pathlib import Path

import gradio as gr

from labeler.app.handlers import REASON_CHOICES, REMOVE_REASONS, Command, Filters, ReviewUI, View
from labeler.errors import LabelerError

KEYS = [
    ("Enter", "accept suggestion"),
    ("k", "keep label"),
    ("01-99 / 1-9", "class by its number"),
    ("/", "search any class"),
    ("x m q", "remove: " + ", ".join(REMOVE_REASONS.values())),
    ("s", "skip"),
    ("u", "undo"),
    ("g", "tick whole group"),
    ("z", "zoom 1:1"),
    ("b", "garment box / crop / whole"),
    ("c", "clear filters"),
]
FILTER_NAMES = ("any_label", "reason", "given", "suggested", "order")

CSS = """
#current-item {height: min(68vh, calc(100vh - 250px)); overflow: auto; background: #f3f3f3;}
.lab-main {width: 100%; height: 100%; object-fit: contain; display: block; margin: auto; cursor: zoom-in;}
#current-item.lab-zoomed .lab-main {width: auto; height: auto; max-width: none; object-fit: none; cursor: zoom-out;}
#prefetch, #lab-go, #lab-clear, #lab-cmd {display: none !important;}
.lab-meta {font-size: 12px; opacity: .8; word-break: break-all;}
.lab-labels {font-size: 17px; margin: 4px 0;}
.lab-reasons {margin: 4px 0 6px 18px; padding: 0; font-size: 14px;}
.lab-row {display: flex; flex-wrap: wrap; gap: 6px; margin: 6px 0;}
.lab-btn {padding: 6px 10px; border-radius: 6px; border: 1px solid #bbb; background: #fff; cursor: pointer; font-size: 14px;}
.lab-btn kbd {font-size: 11px; opacity: .7; margin-left: 4px;}
.lab-primary {background: #ff7c00; color: #fff; border-color: #e06c00; font-weight: 600;}
.lab-stop {border-color: #d33; color: #b00;}
.lab-pick {font-size: 13px;}
.lab-note {background: #fff4d6; border-left: 4px solid #f0b400; padding: 4px 8px; margin: 4px 0; font-size: 13px;}
.lab-warn {color: #b00; font-weight: 600;}
.lab-conflict {border: 2px solid #d33; padding: 4px 8px; margin: 4px 0; font-size: 13px;}
.lab-conflict table {border-collapse: collapse; margin-top: 4px;} .lab-conflict td, .lab-conflict th {padding: 1px 6px;}
.lab-group {display: block; margin: 6px 0; font-size: 14px;}
.lab-strip {display: flex; gap: 6px; align-items: flex-start; margin: 4px 0; flex-wrap: wrap;}
.lab-strip-title {width: 100%; font-size: 13px; opacity: .8;}
.lab-strip figure {margin: 0; text-align: center; font-size: 11px;}
.lab-strip img {height: 96px; width: 96px; object-fit: cover; border-radius: 4px;}
.lab-done {padding: 4em; text-align: center; font-size: 20px;}
.lab-keys {font-size: 12px; opacity: .85; margin-top: 6px;}
#lab-header {display: flex; gap: 12px; align-items: center; flex-wrap: wrap;}
#lab-name {font-size: 15px; padding: 4px 8px; width: 180px; border: 1px solid #999; border-radius: 4px;}
#lab-status {color: #b05a00; font-size: 13px;}
#lab-search {position: fixed; top: 12vh; left: 50%; transform: translateX(-50%); z-index: 1000; background: #fff;
  border: 1px solid #888; border-radius: 8px; padding: 10px; width: min(420px, 92vw); box-shadow: 0 6px 24px #0004;}
#lab-search input {width: 100%; font-size: 16px; padding: 6px;}
#lab-search ul {list-style: none; margin: 6px 0 0; padding: 0; max-height: 50vh; overflow: auto;}
#lab-search li {padding: 3px 6px; cursor: pointer;} #lab-search li.lab-hl {background: #ffe2c2;}
@media (max-width: 700px) { #current-item {height: 38vh;} .lab-btn {padding: 8px 10px;} }
"""


def build_app(workspace: str | Path, *, reviewer: str | None = None, stop_below: float | None = None) -> gr.Blocks:
    """The review app for ``workspace`` (Blocks; serve it with ``launch``)."""
    ui = ReviewUI(workspace, default_reviewer=reviewer, stop_below=stop_below)
    script = (Path(__file__).with_name("review.js")).read_text().replace("NFILTERS", str(len(FILTER_NAMES)))
    with gr.Blocks(title="labeler review", delete_cache=(600, 3600)) as app:
        app.labeler_ui = ui  # for launch(): the image route, the exports folder
        with gr.Tab("Review"):
            gr.HTML(_header(ui, reviewer))
            progress = gr.HTML(elem_id="progress")
            with gr.Row(equal_height=False):
                with gr.Column(scale=3, min_width=320):
                    image = gr.HTML(elem_id="main-image", padding=False)
                    prefetch = gr.HTML(elem_id="prefetch")
                with gr.Column(scale=2, min_width=320):
                    panel = gr.HTML(elem_id="panel")
                    gr.HTML(_legend())
            neighbours = gr.HTML(elem_id="neighbours")
            with gr.Accordion("Queue filters and order (c clears)", open=False), gr.Row():
                filters = [
                    gr.Dropdown([""] + ui.vocab, value="", label="Class (given or suggested)"),
                    gr.Dropdown([""] + REASON_CHOICES, value="", label="Reason", elem_id="filter-reason"),
                    gr.Dropdown([""] + ui.vocab, value="", label="Given label"),
                    gr.Dropdown([""] + ui.vocab, value="", label="Suggested label"),
                    gr.Radio(["priority", "active"], value="priority", label="Order"),
                ]
            with gr.Accordion("Export", open=False):
                include_removed = gr.Checkbox(label="keep removed images (marked)", value=False)
                export_button = gr.Button("Export corrected CSV + audit", elem_id="btn-export")
                export_files = gr.File(label="Download", file_count="multiple")
            command = gr.Textbox(elem_id="lab-cmd", container=False, show_label=False)
            go = gr.Button("go", elem_id="lab-go")
            clear = gr.Button("clear", elem_id="lab-clear")
        with gr.Tab("Overview") as overview_tab:
            overview_md = gr.Markdown()
            class_rates = gr.Image(label="Label-error rate per class", type="pil", interactive=False)
            heatmap = gr.Image(label="Estimated noise matrix P(given | true)", type="pil", interactive=False)

        screen = [image, panel, prefetch, neighbours, progress]

        def run(cmd: str, any_label, reason, given, suggested, order, request: gr.Request):
            """The one event handler: a command from review.js -> the next screen."""
            try:
                data = json.loads(cmd or "{}")
            except json.JSONDecodeError as exc:
                raise gr.Error(f"malformed command: {exc}") from exc
            user = getattr(request, "username", None) if request is not None else None
            who = user or data.get("reviewer")
            chosen = Filters(
                reason=reason or None,
                given=given or None,
                suggested=suggested or None,
                any_label=any_label or None,
                order=order or "priority",
            )
            clear = data.get("action") == "clear"
            if clear:
                data["action"], chosen = "show", Filters()
            try:
                view = ui.handle(who, Command.parse(data), chosen)
            except LabelerError as exc:
                raise gr.Error(str(exc)) from exc
            return _render(view) + ([gr.update(value="")] * (n - 1) + [gr.update(value="priority")] if clear else [])

        n = len(FILTER_NAMES)
        fast = {"queue": False, "show_progress": "hidden"}  # milliseconds of work: no queue, no spinner
        app.load(run, [command, *filters], screen, js=script, **fast)
        take = f"(c, ...f) => [window.labeler.take(), ...f.slice(0, {n})]"
        go.click(run, [command, *filters], screen, js=take, **fast)
        clear.click(run, [command, *filters], screen + filters, js=take, **fast)
        for control in filters:  # a filter chosen by the reviewer (not one the app reset) shows the new queue
            control.input(
                run,
                [command, *filters],
                screen,
                **fast,
                js=f"(c, ...f) => [window.labeler.command({{action: 'show'}}), ...f.slice(0, {n})]",
            )
        export_button.click(lambda r: ui.export(include_removed=r), [include_removed], [export_files])

        def overview():
            from PIL import Image

            markdown, path, rates_path = ui.overview()
            return markdown, (Image.open(rates_path) if rates_path else None), (Image.open(path) if path else None)

        overview_tab.select(overview, None, [overview_md, class_rates, heatmap])

        def start(reviewer: str) -> int:
            """Scripted review: claim the reviewer's next item; its id, or -1 when the queue is done."""
            return ui.show(reviewer).item_id or -1

        def accept(reviewer: str, item_id: int) -> int:
            """Scripted review: accept the suggestion for ``item_id``; the next item's id, or -1."""
            return ui.act(reviewer, item_id, "accept").item_id or -1

        gr.api(start, api_name="start")
        gr.api(accept, api_name="accept")
    return app


def _render(view: View, clear_filters: bool = False) -> list:
    image = view.image_html.replace(
        "<div id='current-item'", f"<div id='current-item' data-reviewer='{html.escape(view.reviewer)}'", 1
    )
    filters = [gr.update(value="") for _ in FILTER_NAMES[:-1]] + [gr.update(value="priority")]
    if not clear_filters:
        filters = [gr.update() for _ in FILTER_NAMES]
    return [image, view.panel_html, view.prefetch_html, view.neighbours_html, view.progress, *filters]


def _header(ui: ReviewUI, reviewer: str | None) -> str:
    vocab = json.dumps([[code, label] for label, code in ui.codes.items()])
    placeholder = html.escape(reviewer or "your name")
    return (
        "<div id='lab-header'><label>Reviewer <input id='lab-name' autocomplete='off' "
        f"placeholder='{placeholder}' title='asked once per browser; Enter to confirm'></label>"
        "<span id='lab-status' role='status'></span></div>"
        f"<div id='lab-vocab' hidden data-vocab='{html.escape(vocab)}'></div>"
        "<div id='lab-search' hidden><input id='lab-search-input' autocomplete='off' "
        "placeholder='type a class name or number; Enter applies, Escape cancels'><ul id='lab-search-list'></ul></div>"
    )


def _legend() -> str:
    keys = " · ".join(f"<kbd>{html.escape(k)}</kbd> {html.escape(v)}" for k, v in KEYS)
    return f"<div class='lab-keys'>{keys}</div>"


def launch(
    app: gr.Blocks,
    *,
    host: str = "127.0.0.1",
    port: int = 7860,
    auth: str | None = None,
    share: bool = False,
    block: bool = True,
    on_ready=None,
):
    """Serve the app. Only the workspace's item images are served; other hosts need ``auth`` (USER:PASS)."""
    credentials = check_launch(host, auth)
    ui: ReviewUI = app.labeler_ui
    exports = ui.ws.path / "exports"
    exports.mkdir(exist_ok=True)
    try:
        app.launch(
            server_name=host,
            server_port=port,
            auth=credentials,
            share=share,
            allowed_paths=[str(exports)],
            css=CSS,
            prevent_thread_lock=True,
            show_error=True,
            quiet=True,
            app_kwargs={"routes": routes(ui)},
        )
    except OSError as exc:
        raise LabelerError(f"port {port} on {host} is in use; pass another one, e.g. --port {port + 1}") from exc
    if on_ready:
        on_ready(f"reviewing {ui.ws.path} on {app.local_url} (Ctrl-C to stop; every decision is saved)")
    if block:
        app.block_thread()
    return app


def check_launch(host: str, auth: str | None) -> tuple[str, str] | None:
    """The login (user, password) to require, or None; refuses a host beyond this machine without one."""
    auth = auth or os.environ.get("LABELER_AUTH")
    if host not in ("127.0.0.1", "localhost", "::1") and not auth:
        raise LabelerError(
            f"binding to {host} exposes the review app beyond this machine; give --auth USER:PASS "
            "(or set LABELER_AUTH) or keep the default --host 127.0.0.1"
        )
    if not auth:
        return None
    user, _, password = auth.partition(":")
    if not user or not password:
        raise LabelerError("--auth must be USER:PASS")
    return user, password


def routes(ui: ReviewUI) -> list:
    """Routes placed ahead of Gradio's: the item images (workspace items only, behind the app's login) and
    a refusal of uploads (the app takes none)."""
    from fastapi import HTTPException, Request
    from fastapi.responses import FileResponse, PlainTextResponse, Response
    from starlette.routing import Route

    async def image(request: Request):
        server = request.app
        if server.auth is not None or server.auth_dependency is not None:
            current_user = _endpoint(server.routes, "get_current_user")
            if current_user is None or await current_user(request) is None:  # fail closed
                raise HTTPException(status_code=401, detail="Not authenticated")
        try:
            item_id = int(request.path_params["item_id"])
        except ValueError:
            raise HTTPException(status_code=404) from None
        path, rendered = ui.image_view(item_id, request.query_params.get("view", "full"))
        headers = {"Cache-Control": "private, max-age=3600"}
        if rendered is not None:
            return Response(rendered, media_type="image/jpeg", headers=headers)
        if path is None:
            raise HTTPException(status_code=404)
        return FileResponse(path, headers=headers)

    async def refuse_upload(request: Request):
        return PlainTextResponse("uploads are turned off in the review app", status_code=403)

    return [
        Route("/labeler/image/{item_id}", image, methods=["GET", "HEAD"]),
        Route("/gradio_api/upload", refuse_upload, methods=["POST"]),
        Route("/upload", refuse_upload, methods=["POST"]),
    ]


def _endpoint(routes, name: str):
    """Gradio's endpoint function called ``name`` (its routers may be nested); None when absent."""
    for route in routes:
        if getattr(getattr(route, "endpoint", None), "__name__", "") == name:
            return route.endpoint
        inner = getattr(getattr(route, "original_router", None), "routes", None) or getattr(route, "routes", None)
        found = _endpoint(inner, name) if inner else None
        if found:
            return found
    return None
