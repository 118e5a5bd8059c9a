"""Festival reminders: the calendar, citizens' subscriptions, officers' events and announcements."""
