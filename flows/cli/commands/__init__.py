"""One module per `kdflow` command; modules starting with _ hold what several commands share."""
