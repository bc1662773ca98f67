//! Sans-IO voice menus: dialplans, call sessions, speaking dates.
