# Sourced by the start script before the user's variables.
export APP_PROFILE_D=sourced
export SAMPLE_OVERRIDE=from-profile-d
