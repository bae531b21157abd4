"""The orchestrator Lambdas of the pipeline's Train and Deploy actions.

    training.py   starts the SageMaker training job, follows it by continuation tokens,
                  applies the gate, registers the model package, writes ModelOutput
    deploy.py     creates the Model and EndpointConfig, creates or updates the endpoint,
                  follows it to InService
    runtime.py    what both share: settings from the environment, the job's outcome

Each is ``handler(event, context)``, invoked by CodePipeline with a job; each ends the job
(success, continuation or failure) itself, and retrying an invocation with the same job
creates nothing twice. They import only mlcicd, PyYAML and the runtime's boto3.
"""
