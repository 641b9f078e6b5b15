"""This host's facts: platform, kernel, 32-bit support, binfmt_misc emulators."""
