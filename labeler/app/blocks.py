"""The Gradio review app: layout, keyboard shortcuts and event wiring. Gradio is imported here only."""

from __future__ import annotations

import os
from pathlib import Path

import gradio as gr

from labeler.app.handlers import PICKS, REASON_CHOICES, REMOVE_REASONS, Filters, ReviewUI, View
from labeler.errors import LabelerError

KEYS = [("Enter", "accept suggestion"), ("k", "keep label"), ("1-9", "pick class"), ("/", "search any class"),
        ("x", "not a garment"), ("m", "several garments"), ("q", "unusable"), ("s", "skip"), ("u", "undo")]  # fmt: skip

KEYBOARD_JS = """
() => {
  if (window.__labelerKeys) return;
  window.__labelerKeys = true;
  const ids = {Enter: 'btn-accept', k: 'btn-keep', x: 'btn-not_garment', m: 'btn-several_garments',
               q: 'btn-unusable', s: 'btn-skip', u: 'btn-undo', Backspace: 'btn-undo'};
  document.addEventListener('keydown', (e) => {
    const t = e.target;
    if (t && (t.tagName === 'INPUT' || t.tagName === 'TEXTAREA' || t.isContentEditable)) {
      if (e.key === 'Escape') t.blur();
      return;
    }
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    if (e.key === '/') {
      const input = document.querySelector('#class-choice input');
      if (input) { input.focus(); e.preventDefault(); }
      return;
    }
    const id = ids[e.key] || (/^[1-9]$/.test(e.key) ? 'btn-pick-' + e.key : null);
    const button = id && document.getElementById(id);
    if (button && !button.disabled) { e.preventDefault(); button.click(); }
  });
}
"""

CSS = """
.lab-main {width: 100%; height: 62vh; object-fit: contain; display: block; margin: auto; background: #f3f3f3;}
#prefetch {display: none;}
.lab-strip {display: flex; gap: 6px; align-items: flex-start; margin: 4px 0; flex-wrap: wrap;}
.lab-strip-title {width: 100%; font-size: 13px; opacity: .8;}
.lab-strip figure {margin: 0; text-align: center; font-size: 11px;}
.lab-strip img {height: 96px; width: 96px; object-fit: cover; border-radius: 4px;}
.lab-done {padding: 4em; text-align: center; font-size: 20px;}
.lab-keys {font-size: 12px; opacity: .85;}
"""


def build_app(workspace: str | Path, *, reviewer: str = "reviewer") -> gr.Blocks:
    """The review app for ``workspace`` (Blocks; launch it with ``launch``)."""
    ui = ReviewUI(workspace, default_reviewer=reviewer)
    with gr.Blocks(title="labeler review") as app:
        app.labeler_ui = ui  # for launch(): the dataset root to allow, the reports to show
        item = gr.State(None)
        with gr.Tab("Review"):
            with gr.Row():
                name = gr.Textbox(
                    value=reviewer, label="Reviewer", scale=1, max_lines=1, container=False, min_width=160
                )
                progress = gr.Markdown(elem_id="progress")
            with gr.Row():
                with gr.Column(scale=3):
                    image = gr.HTML(elem_id="main-image")
                    prefetch = gr.HTML(elem_id="prefetch")
                with gr.Column(scale=2):
                    info = gr.Markdown(elem_id="info")
                    top = gr.Label(num_top_classes=5, label="Top classes (merged model + neighbours)")
                    with gr.Row():
                        accept = gr.Button("Accept suggestion [Enter]", variant="primary", elem_id="btn-accept")
                        keep = gr.Button("Keep label [k]", elem_id="btn-keep")
                    with gr.Row():
                        picks = [
                            gr.Button(f"{i}", size="sm", elem_id=f"btn-pick-{i}", min_width=60)
                            for i in range(1, PICKS + 1)
                        ]
                    with gr.Row():
                        choice = gr.Dropdown(
                            ui.vocab, label="Any class [/]", filterable=True, elem_id="class-choice", scale=3
                        )
                        apply_choice = gr.Button("Set", elem_id="btn-set", scale=1)
                    with gr.Row():
                        removes = {
                            code: gr.Button(f"Remove: {text} [{key}]", size="sm", variant="stop", elem_id=f"btn-{code}")
                            for (code, text), key in zip(REMOVE_REASONS.items(), "xmq")
                        }
                    with gr.Row():
                        skip = gr.Button("Skip [s]", elem_id="btn-skip")
                        undo = gr.Button("Undo [u]", elem_id="btn-undo")
                        whole_group = gr.Checkbox(
                            label="whole near-duplicate group", value=False, elem_id="whole-group"
                        )
                    gr.Markdown(" · ".join(f"`{k}` {v}" for k, v in KEYS), elem_classes="lab-keys")
            neighbours = gr.HTML(elem_id="neighbours")
            with gr.Accordion("Queue filters and order", open=False), gr.Row():
                any_label = gr.Dropdown([""] + ui.vocab, value="", label="Class (given or suggested)")
                reason = gr.Dropdown([""] + REASON_CHOICES, value="", label="Reason")
                given = gr.Dropdown([""] + ui.vocab, value="", label="Given label")
                suggested = gr.Dropdown([""] + ui.vocab, value="", label="Suggested label")
                order = gr.Radio(["priority", "active"], value="priority", label="Order")
            with gr.Accordion("Export", open=False):
                include_removed = gr.Checkbox(label="keep removed images (marked)", value=False)
                export_button = gr.Button("Export corrected CSV + audit", elem_id="btn-export")
                export_files = gr.File(label="Download", file_count="multiple")
        with gr.Tab("Overview") as overview_tab:
            overview_md = gr.Markdown()
            heatmap = gr.Image(label="Estimated noise matrix P(given | true)", type="filepath", interactive=False)

        filters = [any_label, reason, given, suggested, order]
        screen = [item, image, prefetch, info, top, *picks, neighbours, progress]

        def render(view: View):
            return [view.item_id, view.image_html, view.prefetch_html, view.info, view.top,
                    *[gr.update(value=f"{i} {p}" if p else f"{i}", interactive=bool(p)) for i, p in enumerate(view.picks, 1)],
                    view.neighbours_html, view.progress + "".join(f" · *{n}*" for n in view.notes)]  # fmt: skip

        def guarded(handler):
            def run(*args):
                try:
                    return render(handler(*args))
                except LabelerError as exc:
                    raise gr.Error(str(exc)) from exc

            return run

        def to_filters(a, r, g, s, o):
            return Filters(reason=r or None, given=g or None, suggested=s or None, any_label=a or None, order=o)

        inputs = [name, item, whole_group, *filters]
        app.load(guarded(lambda n, *f: ui.show(n, to_filters(*f))), [name, *filters], screen)
        app.load(None, None, None, js=KEYBOARD_JS)
        accept.click(
            guarded(lambda n, i, g, *f: ui.act(n, i, "accept", group=g, filters=to_filters(*f))), inputs, screen
        )
        keep.click(guarded(lambda n, i, g, *f: ui.act(n, i, "keep", group=g, filters=to_filters(*f))), inputs, screen)
        skip.click(guarded(lambda n, i, g, *f: ui.act(n, i, "skip", filters=to_filters(*f))), inputs, screen)
        undo.click(guarded(lambda n, i, g, *f: ui.undo(n, to_filters(*f), release=i)), inputs, screen)
        for rank, button in enumerate(picks, start=1):
            button.click(
                guarded(lambda n, i, g, *f, rank=rank: ui.pick(n, i, rank, to_filters(*f), group=g)), inputs, screen
            )
        for code, button in removes.items():
            button.click(guarded(lambda n, i, g, *f, code=code: ui.act(n, i, "remove", reason=code, group=g, filters=to_filters(*f))), inputs, screen)  # fmt: skip
        apply_choice.click(guarded(lambda c, n, i, g, *f: ui.act(n, i, "relabel", label=c, group=g, filters=to_filters(*f))),
                           [choice, *inputs], screen)  # fmt: skip
        for control in (*filters, name):
            control.change(guarded(lambda n, i, g, *f: ui.show(n, to_filters(*f), release=i)), inputs, screen)
        export_button.click(lambda r: ui.export(include_removed=r), [include_removed], [export_files])

        def start(reviewer: str) -> int:
            """Scripted review: claim the reviewer's next item; its id, or -1 when the queue is done."""
            return ui.show(reviewer).item_id or -1

        def accept(reviewer: str, item_id: int) -> int:
            """Scripted review: accept the suggestion for ``item_id``; the next item's id, or -1."""
            return ui.act(reviewer, item_id, "accept").item_id or -1

        gr.api(start, api_name="start")
        gr.api(accept, api_name="accept")
        overview_tab.select(ui.overview, None, [overview_md, heatmap])
    return app


def launch(app: gr.Blocks, *, host: str = "127.0.0.1", port: int = 7860, auth: str | None = None,
           share: bool = False, block: bool = True):  # fmt: skip
    """Serve the app. Images are served from the dataset root only; other hosts need ``auth`` (USER:PASS)."""
    auth = auth or os.environ.get("LABELER_AUTH")
    if host not in ("127.0.0.1", "localhost", "::1") and not auth:
        raise LabelerError(
            f"binding to {host} exposes the review app beyond this machine; give --auth USER:PASS "
            "(or set LABELER_AUTH) or keep the default --host 127.0.0.1"
        )
    credentials = None
    if auth:
        user, _, password = auth.partition(":")
        if not user or not password:
            raise LabelerError("--auth must be USER:PASS")
        credentials = (user, password)
    ui: ReviewUI = app.labeler_ui
    allowed = [str(ui.ws.root), str(ui.ws.path / "reports")]
    return app.launch(
        server_name=host, server_port=port, auth=credentials, share=share, allowed_paths=allowed,
        css=CSS, prevent_thread_lock=not block, show_error=True, quiet=not block,
    )  # fmt: skip
