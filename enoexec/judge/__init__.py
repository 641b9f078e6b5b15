"""The pure judging code shared by the agent and the collector: what a file is (sniff, elf, filekind) and why it cannot run (classify)."""
