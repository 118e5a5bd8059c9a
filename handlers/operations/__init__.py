"""What an operator does from the command line (`tinbao keys`, `officers`, `audit`, `reminders`): one module
per use case. They print nothing; bot/cli.py parses the arguments and prints what they return."""
