-- MLflow's backend store beside Dagster's instance database (POSTGRES_DB).
CREATE DATABASE mlflow OWNER samplehub;
