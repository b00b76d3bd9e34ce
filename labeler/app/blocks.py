"""The Gradio review app: layout and event wiring. Gradio is imported here only.

The screen's buttons are plain HTML rendered by the handlers; ``review.js`` turns a key press or a
click into one command (naming the item on screen) and sends it through one hidden button, so the
whole app has one event path: ``ReviewUI.handle``.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

import gradio as gr
import httpx
from fastapi import HTTPException, Request
from fastapi.responses import FileResponse, PlainTextResponse, Response
from starlette.routing import Route

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
FILTER_NAMES = ("any_label", "reason", "current", "suggested", "order")

CSS = (Path(__file__).with_name("review.css")).read_text()
FAST = {"queue": False, "show_progress": "hidden"}  # each event is milliseconds of work: no queue, no spinner


class ReviewApp:
    """The review app of one workspace: its Gradio Blocks (``blocks``), built once, and ``launch`` to serve them."""

    def __init__(self, workspace: str | Path, *, reviewer: str | None = None, stop_below: float | None = None):
        self.ui = ReviewUI(workspace, default_reviewer=reviewer, stop_below=stop_below)
        self.reviewer = reviewer
        self.pings = 0  # calls of /ping (the launch's warm-up makes one)
        with gr.Blocks(title="labeler review", delete_cache=(600, 3600)) as self.blocks:
            with gr.Tab("Review"):
                self._review_tab()
            with gr.Tab("Overview") as overview_tab:
                self._overview_tab(overview_tab)
            self._scripted_api()

    # -- layout ---------------------------------------------------------------------------
    def _review_tab(self) -> None:
        ui = self.ui
        gr.HTML(_header(ui, self.reviewer))
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
            self.filters = [
                gr.Dropdown([""] + ui.vocab, value="", label="Class (current label or suggested)"),
                gr.Dropdown([""] + REASON_CHOICES, value="", label="Reason", elem_id="filter-reason"),
                gr.Dropdown([""] + ui.vocab, value="", label="Current label"),
                gr.Dropdown([""] + ui.vocab, value="", label="Suggested label"),
                gr.Radio(["priority", "active"], value="priority", label="Order"),
            ]
        with gr.Accordion("Export", open=False):
            include_removed = gr.Checkbox(label="keep removed images (marked)", value=False)
            export_button = gr.Button("Export corrected CSV + audit", elem_id="btn-export")
            export_files = gr.File(label="Download", file_count="multiple")
        self.command = gr.Textbox(elem_id="lab-cmd", container=False, show_label=False)
        go = gr.Button("go", elem_id="lab-go")
        clear = gr.Button("clear", elem_id="lab-clear")
        self.screen = [image, panel, prefetch, neighbours, progress]
        n = len(FILTER_NAMES)
        script = (Path(__file__).with_name("review.js")).read_text().replace("NFILTERS", str(n))
        take = f"(c, ...f) => [window.labeler.take(), ...f.slice(0, {n})]"
        self._wire(self.blocks.load, self._run, script)
        self._wire(go.click, self._run, take)
        self._wire(clear.click, self._clear, take, self.screen + self.filters)
        show = f"(c, ...f) => [window.labeler.command({{action: 'show'}}), ...f.slice(0, {n})]"
        for control in self.filters:  # a filter chosen by the reviewer (not one the app reset) shows the new queue
            self._wire(control.input, self._run, show)
        export_button.click(lambda r: ui.export(include_removed=r), [include_removed], [export_files])

    def _overview_tab(self, tab) -> None:
        markdown = gr.Markdown()
        class_rates = gr.Image(label="Label-error rate per class", type="pil", interactive=False)
        heatmap = gr.Image(label="Estimated noise matrix P(given | true)", type="pil", interactive=False)

        def overview():
            from PIL import Image

            text, path, rates_path = self.ui.overview()
            return text, (Image.open(rates_path) if rates_path else None), (Image.open(path) if path else None)

        tab.select(overview, None, [markdown, class_rates, heatmap])

    def _scripted_api(self) -> None:
        def start(reviewer: str) -> int:
            """Scripted review: claim the reviewer's next item; its id, or -1 when the queue is done."""
            return self.ui.show(reviewer).item_id or -1

        def accept(reviewer: str, item_id: int) -> int:
            """Scripted review: accept the suggestion for ``item_id``; the next item's id, or -1."""
            return self.ui.act(reviewer, item_id, "accept").item_id or -1

        def ping() -> str:
            """A health check; `launch` calls it once so the first reviewer does not pay the event queue's start-up."""
            self.pings += 1
            return "ok"

        gr.api(ping, api_name="ping")
        gr.api(start, api_name="start")
        gr.api(accept, api_name="accept")

    # -- events ---------------------------------------------------------------------------
    def _wire(self, event, handler, js: str, outputs: list | None = None) -> None:
        """Every screen event: the command box and the filters in, the screen (and maybe the filters) out."""
        event(handler, [self.command, *self.filters], outputs or self.screen, js=js, **FAST)

    def _run(self, cmd: str, any_label, reason, current, suggested, order, request: gr.Request) -> list:
        """The one event handler: a command from review.js -> the next screen."""
        chosen = Filters(
            reason=reason or None,
            current=current or None,
            suggested=suggested or None,
            any_label=any_label or None,
            order=order or "priority",
        )
        return _render(self._handle(cmd, chosen, request))

    def _clear(self, cmd: str, any_label, reason, current, suggested, order, request: gr.Request) -> list:
        """`c`: the whole queue again, and the filters back to their defaults."""
        view = self._handle(cmd, Filters(), request, action="show")
        return _render(view) + [gr.update(value="")] * (len(FILTER_NAMES) - 1) + [gr.update(value="priority")]

    def _handle(self, cmd: str, filters: Filters, request, action: str | None = None) -> View:
        try:
            data = json.loads(cmd or "{}")
        except json.JSONDecodeError as exc:
            raise gr.Error(f"malformed command: {exc}") from exc
        if action:
            data["action"] = action
        user = getattr(request, "username", None) if request is not None else None
        try:
            return self.ui.handle(user or data.get("reviewer"), Command.parse(data), filters)
        except LabelerError as exc:
            raise gr.Error(str(exc)) from exc

    # -- serving --------------------------------------------------------------------------
    def launch(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 7860,
        auth: tuple[str, str] | None = None,
        share: bool = False,
        block: bool = True,
        on_ready=None,
    ) -> gr.Blocks:
        """Serve the app. Only the workspace's item images are served; other hosts need ``auth`` (user, password)."""
        check_launch(host, auth)
        exports = self.ui.ws.path / "exports"
        exports.mkdir(exist_ok=True)
        try:
            self.blocks.launch(
                server_name=host,
                server_port=port,
                auth=auth,
                share=share,
                allowed_paths=[str(exports)],
                css=CSS,
                prevent_thread_lock=True,
                show_error=True,
                quiet=True,
                app_kwargs={"routes": routes(self.ui)},
            )
        except OSError as exc:
            raise LabelerError(f"port {port} on {host} is in use; pass another one, e.g. --port {port + 1}") from exc
        self.ui.estimate()  # the first screen's slowest part at scale, cached before anyone asks
        _warm_up(self.blocks.local_url, auth)
        if on_ready:
            on_ready(
                f"reviewing {self.ui.ws.path} on {self.blocks.local_url} (Ctrl-C to stop; every decision is saved)"
            )
        if block:
            self.blocks.block_thread()
        return self.blocks


def _warm_up(url: str, auth: tuple[str, str] | None) -> None:
    """One call through Gradio's event queue (``/ping``) before the app says it is ready: the queue's first
    event is slow, and a reviewer's first screen would otherwise wait for it (`labeler bench review` times it).
    Best effort: a failure here never stops the app."""

    try:
        with httpx.Client(base_url=url.rstrip("/"), timeout=10, trust_env=False) as client:  # no proxy for localhost
            if auth:
                client.post("/login", data={"username": auth[0], "password": auth[1]})
            event = client.post("/gradio_api/call/ping", json={"data": []}).json()["event_id"]
            with client.stream("GET", f"/gradio_api/call/ping/{event}") as stream:
                for line in stream.iter_lines():
                    if line.startswith("event: complete"):
                        break
    except (httpx.HTTPError, KeyError, ValueError):
        pass


def _render(view: View) -> list:
    """The screen's five HTML parts, in ``ReviewApp.screen`` order."""
    image = view.image_html.replace(
        "<div id='current-item'", f"<div id='current-item' data-reviewer='{html.escape(view.reviewer)}'", 1
    )
    return [image, view.panel_html, view.prefetch_html, view.neighbours_html, view.progress]


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


def check_launch(host: str, auth: tuple[str, str] | None) -> None:
    """Refuse a host beyond this machine without a login (``auth``: (user, password), parsed by the CLI)."""
    if host not in ("127.0.0.1", "localhost", "::1") and not auth:
        raise LabelerError(
            f"binding to {host} exposes the review app beyond this machine; give --auth USER:PASS "
            "(or set LABELER_AUTH) or keep the default --host 127.0.0.1"
        )


def routes(ui: ReviewUI) -> list:
    """Routes placed ahead of Gradio's: the item images (workspace items only, behind the app's login) and
    a refusal of uploads (the app takes none)."""

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
