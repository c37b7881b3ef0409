"""Operations over the engine: the deploy pipeline, doctor, triage and the runbooks."""
