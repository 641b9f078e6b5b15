"""enoexec agent: catches containers that die of exec format error and says why."""
