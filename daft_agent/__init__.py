"""The learner: encoders, actors, critics, buffers, DualActorAgent, baselines and the CLI."""
