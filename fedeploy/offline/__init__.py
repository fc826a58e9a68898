"""The offline engine: runs each stack's real program under Pulumi's mock runtime."""
