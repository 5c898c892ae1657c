from toxplatform.accounts.selectors import user_roles


def roles(request):
    user = getattr(request, "user", None)
    names = user_roles(user) if user is not None else set()
    return {"is_researcher": "Researcher" in names, "is_annotator": "Annotator" in names}
