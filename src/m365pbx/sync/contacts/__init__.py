"""Contacts: keep each person's Outlook contacts, the directory and org contacts indexed."""

from m365pbx.sync.contacts.entries import contact_entry, directory_entries
from m365pbx.sync.contacts.reader import (
    ContactsPlan,
    ContactsStatus,
    ContactsSync,
    KeptBook,
    KeptBooks,
)
from m365pbx.sync.contacts.subscriptions import ContactSubscriptions

__all__ = ["ContactSubscriptions", "ContactsPlan", "ContactsStatus", "ContactsSync",
           "KeptBook", "KeptBooks", "contact_entry", "directory_entries"]
