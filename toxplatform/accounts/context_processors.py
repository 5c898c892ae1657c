from toxplatform.accounts.permissions import can_read_leaderboards
from toxplatform.accounts.selectors import user_roles


def roles(request):
    user = getattr(request, "user", None)
    names = user_roles(user) if user is not None else set()
    is_staff = bool(user is not None and user.is_authenticated and user.is_staff)
    return {
        "is_researcher": "Researcher" in names,
        "is_annotator": "Annotator" in names,
        # Researcher pages (corpus, evaluation) are open to staff too; see accounts.permissions.
        "can_research": is_staff or "Researcher" in names,
        "can_read_leaderboards": user is not None and can_read_leaderboards(user),
    }
