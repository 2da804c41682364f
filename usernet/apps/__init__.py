"""Built-in applications on top of the stack and the asyncio face: the services `usernet up` serves and the demo."""
