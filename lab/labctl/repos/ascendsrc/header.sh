#!/bin/bash
# LAB FIXTURE: @FILENAME@ is the aicluster lab's stand-in for Huawei's Ascend Docker Runtime release
# package (built by lab/labctl/repos/ascend.py). Never product code; it contains no Huawei software.
# Like the real one it is a makeself 2.4.2 archive with MindCluster's header: this shell header,
# then a gzip'd tar (from line @SKIP@ + 1 on) holding run_main.sh, uninstall.sh, the install helper,
# the runtime programs (stand-ins), base.list and the README. Run it as root:
#     ./@FILENAME@ --install [--install-scene=docker|containerd|isula] [--install-path=DIR] ...
# It extracts itself into $TMPDIR (default $HOME), runs ./run_main.sh there and removes the copy.

umask 027
ORIG_UMASK=`umask`

RT_LOWER_CASE="ascend-docker-runtime"
LAB_ROOT="${ASCEND_DOCKER_RUNTIME_LAB_ROOT:-}"
LAB_ROOT="${LAB_ROOT%/}"

readonly INSTALL_LOG_DIR=${LAB_ROOT}/var/log/${RT_LOWER_CASE}
readonly INSTALL_LOG_PATH=${INSTALL_LOG_DIR}/installer.log
readonly INSTALL_LOG_PATH_BAK=${INSTALL_LOG_DIR}/installer_bak.log
readonly LOG_SIZE_THRESHOLD=$((20*1024*1024))

check_log()
{
    if ! test -d ${INSTALL_LOG_DIR}; then
        mkdir -p -m 750 ${INSTALL_LOG_DIR}
    fi
    if ! test -f ${INSTALL_LOG_PATH}; then
        touch ${INSTALL_LOG_PATH}
        chmod 640 ${INSTALL_LOG_PATH}
        return
    fi
    local log_size="$(stat -c %s ${INSTALL_LOG_PATH})"
    if test ${log_size} -gt ${LOG_SIZE_THRESHOLD}; then
        mv -f ${INSTALL_LOG_PATH} ${INSTALL_LOG_PATH_BAK}
        chmod 400 ${INSTALL_LOG_PATH_BAK}
        > ${INSTALL_LOG_PATH}
        chmod 640 ${INSTALL_LOG_PATH}
    fi
}

log()
{
    local ip="${SSH_CLIENT%% *}"
    if [ "${ip}" = "" ]; then
        ip="localhost"
    fi
    echo "$1 [$(date +'%Y/%m/%d %H:%M:%S')] [uid: ${UID}] [${ip}] [${RT_LOWER_CASE}] $2" >> ${INSTALL_LOG_PATH}
}

check_log

SHA="@SHA256@"
TMPROOT=${TMPDIR:="$HOME"}
if ! test -d "$TMPROOT"; then
    TMPROOT="$PWD"
fi
export TMPDIR="$TMPROOT"
USER_PWD="$PWD"
if ! test -d "$USER_PWD"; then
    exit 1
fi
export USER_PWD
ARCHIVE_DIR=`dirname "$0"`
export ARCHIVE_DIR

name_of_file="$0 "
pwd_of_file="$PWD"
label="@LABEL@"
script="./run_main.sh"
scriptargs=""
skip="@SKIP@"
legacy_options="@LEGACY@"
helpheader=""
IFS= read -r -d '' helpheader <<'EOHELP'
@HELPHEADER@
EOHELP
helpheader="${helpheader%$'\n'}"

MS_Help()
{
    if test x"$legacy_options" = xy; then
        cat << EOH >&2
Usage: $0 [options]
Options:
  --help | -h                   Print this message
  --check|--info|--list|--quiet|--tar    These parameters are meaningless for ${RT_LOWER_CASE} and
                                will be discarded in the future
${helpheader}
EOH
    else
        cat << EOH >&2
Usage: $0 [options]
Options:
  --help | -h                   Print this message
${helpheader}
EOH
    fi
}

MS_Help_Error()
{
    echo "Error input" >&2
    MS_Help
}

MS_Payload()
{
    local offset=`head -n "$skip" "$0" | wc -c | tr -d " "`
    tail -c +$((offset + 1)) "$0"
}

MS_Check()
{
    printf "Verifying archive integrity..."
    local sum=`MS_Payload | sha256sum | cut -b-64`
    if test x"$sum" != x"$SHA"; then
        echo "Error in SHA256 checksums: $sum is different from $SHA" >&2
        log "[ERROR]" "check failed, Error in SHA256 checksums: $sum is different from $SHA"
        exit 2
    fi
    printf " SHA256 checksums are OK.\n" >&2
    echo " All good."
    log "[INFO]" "check success"
}

Script_Args_Check()
{
    local supported=$(echo ${helpheader} | grep -o -E -e "--[^ ]+" | awk -F"=" {'print $1'})
    local arg_to_test=$(echo $1 | awk -F"=" {'print $1'})
    local arg
    for arg in ${supported}; do
        if test x"$arg_to_test" = x"$arg"; then
            return
        fi
    done
    MS_Help_Error
    exit 1
}

while [ -n "$*" ]
do
    case "$1" in
    -h | --help)
        MS_Help
        exit 0
        ;;
    --info|--list|--quiet|--tar|--check)
        if test x"$legacy_options" != xy; then
            Script_Args_Check "$1"
        fi
        case "$1" in
        --info)
            echo "[WARNING]: --info is meaningless for ${RT_LOWER_CASE} and will be discarded in the future"
            echo "${RT_LOWER_CASE} pkg"
            exit 0
            ;;
        --list)
            echo "[WARNING]: --list is meaningless for ${RT_LOWER_CASE} and will be discarded in the future"
            MS_Payload | gzip -cd | tar tf - | sed 's|^\./||; /^$/d; s|^|  |'
            exit 0
            ;;
        --quiet)
            echo "[WARNING]: --quiet is meaningless for ${RT_LOWER_CASE} and will be discarded in the future"
            shift
            ;;
        --tar)
            echo "[WARNING]: --tar is meaningless for ${RT_LOWER_CASE} and will be discarded in the future"
            arg1="$2"
            shift 2 || { MS_Help; exit 1; }
            if ! MS_Payload | gzip -cd | tar "$arg1" - "$@"; then
                log "[ERROR]" "tar failed"
                exit 1
            fi
            log "[INFO]" "tar success"
            exit 0
            ;;
        --check)
            echo "[WARNING]: --check is meaningless for ${RT_LOWER_CASE} and will be discarded in the future"
            MS_Check
            exit 0
            ;;
        esac
        ;;
    *)
        Script_Args_Check "$1"
        scriptargs="$scriptargs '$1'"
        shift
        ;;
    esac
done

scriptargs="--$name_of_file""--\"$pwd_of_file\""" $scriptargs"

tmpdir="$TMPROOT/selfgz$$$RANDOM"
mkdir -m 750 "$tmpdir" || {
    echo 'Cannot create target directory' $tmpdir >&2
    log "[ERROR]" "extract failed, Cannot create target directory: $tmpdir"
    exit 1
}

MS_cleanup()
{
    echo 'Signal caught, cleaning up' >&2
    cd "$TMPROOT"
    rm -rf "$tmpdir"
    exit 15
}
trap MS_cleanup 1 2 3 15

printf "Uncompressing %s" "$label"
if ! MS_Payload | gzip -cd | ( cd "$tmpdir"; umask $ORIG_UMASK; tar xpvf - ) >/dev/null 2>&1; then
    echo >&2
    echo "Unable to decompress $0" >&2
    log "[ERROR]" "extract failed, Unable to decompress $0"
    cd "$TMPROOT"
    rm -rf "$tmpdir"
    exit 1
fi
echo

cd "$tmpdir"
res=0
eval "\"$script\" $scriptargs"; res=$?

cd "$TMPROOT"
rm -rf "$tmpdir"
exit $res
