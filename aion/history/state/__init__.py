"""An execution's state and the state machines that change it, behind `MutableState`."""
