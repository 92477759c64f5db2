"""Reading a request's body ahead of its app, and handing it on as if unread."""

from starlette.types import Message, Receive


async def receive_body(receive: Receive, limit: int | None = None) -> list[Message] | None:
    """The request's messages up to its last body chunk, or up to the client's disconnect; None as
    soon as the body grows past `limit` bytes."""
    messages = []
    seen = 0
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            return messages
        seen += len(message.get("body", b""))
        if limit is not None and seen > limit:
            return None
        if not message.get("more_body", False):
            return messages


def replaying(messages: list[Message], receive: Receive) -> Receive:
    """A receive that gives `messages` first, then whatever else comes."""
    pending = list(messages)

    async def replay() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replay
