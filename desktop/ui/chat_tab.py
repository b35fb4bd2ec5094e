"""The Chat tab: a conversation with an instruct model, streamed token by token.

A message box, Send (and Ctrl+Enter), Stop, Regenerate (the last question asked again), Clear; the
model, the system prompt and the generation options beside it. The conversation lives in the
page's ``gr.Chatbot`` and two ``gr.State`` s (the question being answered and the turns before it),
so each browser session has its own. A turn is three chained events, like every task tab's run:
``begin`` (the question shown at once, the box emptied, Stop shown; not queued), the answer
(streamed, on the one inference queue, through the task's handler) and ``end`` (the message line,
Send back; after a refusal the conversation as it was and the question back in the box).

Scripts use ``/chat`` (:func:`desktop.ui.task_tab.api_endpoint`): the same task, the history in and
out as plain messages. Built on the main thread inside ``build_app``; handlers run on Gradio's workers.
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from desktop.errors import UserError
from desktop.tasks import chat
from desktop.tasks.spec import TaskSpec
from desktop.ui import model_lists
from desktop.ui.handlers import RunControl, make_handler
from desktop.ui.task_tab import (
    CONCURRENT_REQUESTS,
    INFERENCE_QUEUE,
    PRIVATE,
    TaskTab,
    api_endpoint,
    message_html,
    model_dropdown,
    task_tab,
)
from desktop.ui.widgets import option_widget


def shown(history: Any) -> list[dict[str, str]]:
    """The Chatbot's value as plain messages (role + text)."""
    try:
        return chat.clean_history(history)
    except UserError:
        return []


def build_chat_tab(spec: TaskSpec, door: Any, status: gr.Markdown, local: bool) -> TaskTab:
    """Add the Chat tab (inside the app's gr.Tabs) and wire its events and ``/chat``."""
    with gr.Tab(spec.title, id=spec.id) as tab:
        gr.Markdown(spec.description, elem_classes="task-description")
        control = gr.State(RunControl())
        asked = gr.State(None)  # the question being answered
        before = gr.State([])  # the turns before it
        with gr.Row(equal_height=False):
            with gr.Column(scale=3):
                history = gr.Chatbot(
                    label="Conversation",
                    height=420,
                    buttons=["copy", "copy_all"],
                    placeholder="Ask anything: the model runs on this computer.",
                    elem_id="chat-history",
                )
                box = gr.Textbox(
                    label="Message",
                    lines=2,
                    placeholder="Type a message… (Ctrl+Enter sends)",
                    elem_id="chat-message",
                )
                with gr.Row():
                    send = gr.Button("Send", variant="primary", elem_id=f"run-{spec.id}", scale=3)
                    stop = gr.Button(
                        "Stop", variant="stop", visible=False, elem_id=f"stop-{spec.id}", scale=1
                    )
                    again = gr.Button("Regenerate", elem_id=f"regenerate-{spec.id}", scale=1)
                    clear = gr.Button("Clear", elem_id=f"clear-{spec.id}", scale=1)
                message = gr.HTML("", elem_id=f"message-{spec.id}", show_progress="hidden")
            with gr.Column(scale=2):
                model = model_dropdown(spec, door, local)
                system, *generation = spec.options
                options = [option_widget(system).render()]
                with gr.Accordion("Options", open=False):
                    options += [option_widget(option).render() for option in generation]
                gr.Markdown(
                    "Ctrl+Enter (⌘+Enter on a Mac) sends. Regenerate asks the last question again; "
                    "Clear starts a new conversation.",
                    elem_classes="pd-hint",
                )
        gr.Examples(examples=[[example[0]] for example in spec.examples], inputs=[box], label="Examples")
        api_endpoint(spec, door, model, options)

    remember = (lambda name: model_lists.remember(spec.id, name)) if local else None
    answer = make_handler(spec, door, remember, lambda result: (result.data["history"],))
    running_outputs = [message, send, stop, again]  # while an answer runs: Stop, no Send or Regenerate
    busy = (gr.update(visible=False), gr.update(visible=True), gr.update(interactive=False))
    idle = (gr.update(visible=True), gr.update(visible=False), gr.update(interactive=True))

    def begin(text: str, current_history: Any, current: RunControl) -> tuple[Any, ...]:
        earlier = shown(current_history)
        question = text or ""
        showing = [*earlier, {"role": "user", "content": question}] if question.strip() else earlier
        return question, earlier, showing, "", "", *busy

    def begin_again(current_history: Any, current: RunControl) -> tuple[Any, ...]:
        try:
            question, earlier = chat.regenerate(shown(current_history))
        except UserError as exc:
            current.start()
            current.finish(error=str(exc))
            raise gr.Error(str(exc), print_exception=False, visible=False) from None
        showing = [*earlier, {"role": "user", "content": question}]
        return question, earlier, showing, "", *busy

    def end(current: RunControl, chosen: str | None, question: str | None, earlier: Any) -> tuple[Any, ...]:
        refused = current.failed
        return (
            message_html(current),
            *idle,
            door.status.line(),
            model_lists.update(spec, door.store, chosen, local=local),
            shown(earlier) if refused else gr.update(),
            (question or "") if refused else gr.update(),
        )

    def on_clear(current: RunControl) -> tuple[Any, ...]:
        current.request_stop()
        current.message, current.failed = "", False
        return [], None, [], message_html(current), *idle

    answering: dict[str, Any] = {
        "inputs": [asked, before, model, *options, control],
        "outputs": history,
        "concurrency_id": INFERENCE_QUEUE,
        "concurrency_limit": CONCURRENT_REQUESTS,
        **PRIVATE,
    }
    ended: dict[str, Any] = {
        "inputs": [control, model, asked, before],
        "outputs": [*running_outputs, status, model, history, box],
        "queue": False,
        **PRIVATE,
    }
    turns = []
    sent = send.click(
        begin,
        inputs=[box, history, control],
        outputs=[asked, before, history, box, *running_outputs],
        queue=False,
        **PRIVATE,
    ).then(answer, **answering)
    turns.append(sent)
    started_again = again.click(
        begin_again,
        inputs=[history, control],
        outputs=[asked, before, history, *running_outputs],
        queue=False,
        **PRIVATE,
    )
    started_again.failure(lambda current: message_html(current), inputs=control, outputs=message, **PRIVATE)
    turns.append(started_again.success(answer, **answering))
    for turn in turns:
        turn.success(end, **ended)
        turn.failure(end, **ended)
    stop.click(lambda current: current.request_stop(), inputs=control, cancels=turns, queue=False, **PRIVATE)
    for emptied in (clear.click, history.clear):  # the button, and the conversation's own bin
        emptied(
            on_clear,
            inputs=control,
            outputs=[history, asked, before, *running_outputs],
            cancels=turns,
            queue=False,
            **PRIVATE,
        )
    return task_tab(spec, door, model, tab, local)
