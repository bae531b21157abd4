"""The AWS target: the reference architecture as a CloudFormation stack, its orchestrator
Lambdas, and the SageMaker pieces `mlcicd run` uses from a laptop.

    template/        the stack as plain data (``build_template``) and YAML (``to_yaml``)
    names.py         names and ARN patterns shared by the template and the Lambdas, so a
                     policy scoped by name prefix and the code naming resources cannot drift
    stack.py         applying it: change sets, stack events, deletion; the Lambda code bucket
    package.py       the Lambdas' deployment package
    lambdas/         the Train and Deploy actions' functions (CodePipeline job → SageMaker)
    codepipeline.py  a CodePipeline job: its artifacts, and success, continuation or failure
    training_jobs.py CreateTrainingJob as plain data; how a job ended, its final metrics
    hosting.py       Models, EndpointConfigs, endpoints: created once, rolled out, followed
    deployment.py    what ``deploy:`` becomes on SageMaker: the EndpointConfig request, data
                     capture, traffic shifting and rollback thresholds as plain data
    alarms.py        the CloudWatch alarms that roll an endpoint update back
    endpoint_metrics.py  an endpoint's metrics from CloudWatch, summed as a local one's are
    sourcedir.py     a job's or model's code from sourcedir.tar.gz on S3, as the toolkits get it
    images.py        whether a training image is in ECR, asked before a job starts
    clients.py       every boto3 client, and AWS's errors as ``AwsError``

The SageMaker backends themselves sit beside their local twins:
``mlcicd.training.sagemaker``, ``mlcicd.endpoints.sagemaker``, ``mlcicd.store.s3``.
"""
