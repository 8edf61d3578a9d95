"""Evaluation: task registry (tasks), eval files (records), prompts, backends, scoring (+ lenient), runner."""
