"""Answerers: extractive (default), LLM (optional), and the verifier both pass through."""
