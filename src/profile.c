/* Compression profiles (h5ml.h, section 2): names, and the filter pipeline that a profile and
 * the explicit compression options make together. */
#include "chunkcol.h"

#include <string.h>

typedef struct profile_parts {
    const char *name;
    pipe_codec codec;
    int level; /* gzip level, 0 for the profiles that are not gzip */
} profile_parts;

/* Indexed by h5ml_profile; DEFAULT is balanced. */
static const profile_parts profiles[] = {
    [H5ML_PROFILE_DEFAULT] = { "balanced", PIPE_GZIP, 4 },
    [H5ML_PROFILE_FAST] = { "fast", PIPE_LZF, 0 },
    [H5ML_PROFILE_BALANCED] = { "balanced", PIPE_GZIP, 4 },
    [H5ML_PROFILE_SMALL] = { "small", PIPE_GZIP, 9 },
    [H5ML_PROFILE_NONE] = { "none", PIPE_NONE, 0 },
};
enum { NPROFILES = sizeof profiles / sizeof *profiles };

int h5ml_profile_from_name(const char *name)
{
    if (name == NULL) return -1;
    for (int p = H5ML_PROFILE_FAST; p < NPROFILES; p++)
        if (strcmp(name, profiles[p].name) == 0) return p;
    return -1;
}

const char *h5ml_profile_name(int profile)
{
    return profile >= 0 && profile < NPROFILES ? profiles[profile].name : NULL;
}

void h5ml__pipeline_resolve(pipeline *p, int64_t profile, int64_t compression, int64_t level, int64_t shuffle)
{
    const profile_parts *pp = &profiles[profile >= 0 && profile < NPROFILES ? profile : H5ML_PROFILE_DEFAULT];
    if (compression == H5ML_COMPRESS_NONE) p->codec = PIPE_NONE;
    else if (compression == H5ML_COMPRESS_LZF) p->codec = PIPE_LZF;
    else if (compression == H5ML_COMPRESS_GZIP) p->codec = PIPE_GZIP;
    else p->codec = pp->codec;
    /* Every profile shuffles whatever it compresses (none compresses nothing). */
    p->level = (int)(level ? level : pp->level ? pp->level : 4);
    p->shuffle = shuffle >= 0 && p->codec != PIPE_NONE;
    p->nfilters = (p->shuffle ? 1 : 0) + (p->codec != PIPE_NONE ? 1 : 0);
}
