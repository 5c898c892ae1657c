"""manage.py resume_job ID...: queue again what a broker restart, a dead worker or a failure
left undone (a failed or cancelled job is re-opened). For the operator: no ownership check."""
from django.core.management.base import CommandError

from evaluation import services
from evaluation.models import EvaluationJob
from toxplatform.commands import ApplicationCommand
from toxplatform.validation import parse_id


class Command(ApplicationCommand):
    help = "Resume evaluation jobs: re-send their unfinished chunks to the workers."

    def add_arguments(self, parser):
        parser.add_argument("job_ids", nargs="+", help="job ids")

    def handle(self, *args, job_ids, **options):
        ids = [parse_id(value, "job id") for value in job_ids]
        for job_id in ids:
            job = EvaluationJob.objects.filter(pk=job_id).first()
            if job is None:
                raise CommandError(f"no job {job_id}")
            sent = services.resume_job(job, by="manage.py resume_job")
            job.refresh_from_db()
            self.stdout.write(f"Job {job.pk}: {job.status}, {len(sent)} chunk(s) queued again")
