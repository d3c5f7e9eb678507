"""Job runs in the admin (admin.py): read-only, translated, for staff with the permission to view them."""
