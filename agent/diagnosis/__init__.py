"""Why did this exit fail: the runtime's message, the file it tried to execute, the cause."""
