"""Operations: running in production, retention, and applying the register to a data set."""
