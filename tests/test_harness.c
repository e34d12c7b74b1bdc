/* SPDX-License-Identifier: MIT */
/* The harness itself (testhelper.h): a failed CHECK anywhere makes the test program fail. Each
 * case runs a small program in a forked child and asserts its exit status; the "CHECK failed"
 * lines these children print are expected. */
#include <pthread.h>
#include <signal.h>

#include "testhelper.h"

/* Runs body in a child process (which has its own failure count) and returns its wait status. */
static int in_child(int (*body)(void))
{
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0)
        _exit(body());
    int status;
    REQUIRE(waitpid(pid, &status, 0) == pid);
    return status;
}

static int exit_code(int status) { return WIFEXITED(status) ? WEXITSTATUS(status) : -1; }

static void failing_test(void)
{
    CHECK(1 + 1 == 3);
    CHECK(2 + 2 == 4);
}
static void passing_test(void) { CHECK_EQ_U(2 + 2, 4); }

static int run_failing(void)
{
    static const test_case t[] = {{"failing", failing_test}, {"passing", passing_test}};
    char *argv[] = {"harness", NULL};
    return run_tests(t, 2, 1, argv);
}
static int run_passing(void)
{
    static const test_case t[] = {{"passing", passing_test}};
    char *argv[] = {"harness", NULL};
    return run_tests(t, 1, 1, argv);
}
static int run_unknown_name(void)
{
    static const test_case t[] = {{"passing", passing_test}};
    char *argv[] = {"harness", "no-such-test", NULL};
    return run_tests(t, 1, 2, argv);
}

static void *check_in_thread(void *arg)
{
    (void)arg;
    CHECK_EQ_I(-1, 1);
    return NULL;
}
static int thread_fails(void)
{
    pthread_t t;
    REQUIRE(pthread_create(&t, NULL, check_in_thread, NULL) == 0);
    pthread_join(t, NULL);
    return test_result("thread");
}

static void child_body_fails(void) { CHECK_CONTAINS("temporal-slab", "malloc"); }
static void child_body_passes(void) { CHECK_CONTAINS("temporal-slab", "slab"); }
static int child_check_fails(void)
{
    /* A failed CHECK in a test_run_child child must not report success, and must not count in
     * the parent (the parent asserts the child's status instead). */
    int bad = test_run_child(child_body_fails);
    int good = test_run_child(child_body_passes);
    return bad != 0 && good == 0 && test_failures() == 0 ? 0 : 1;
}

static int require_aborts(void)
{
    REQUIRE(1 + 1 == 3);
    return 0;
}

static int many_failures(void)
{
    for (int i = 0; i < 1000; i++)
        CHECK(i < 0); /* printed 50 times, counted 1000 times */
    return test_failures() == 1000 ? 0 : 1;
}

static void check_fails_the_program(void) { CHECK_EQ_I(exit_code(in_child(run_failing)), 1); }
static void passing_program_exits_0(void) { CHECK_EQ_I(exit_code(in_child(run_passing)), 0); }
static void unknown_test_name_fails(void) { CHECK_EQ_I(exit_code(in_child(run_unknown_name)), 1); }
static void check_in_a_thread_fails(void) { CHECK_EQ_I(exit_code(in_child(thread_fails)), 1); }
static void check_in_a_child_fails(void) { CHECK_EQ_I(exit_code(in_child(child_check_fails)), 0); }
static void failures_all_counted(void) { CHECK_EQ_I(exit_code(in_child(many_failures)), 0); }
static void require_stops_at_once(void)
{
    int status = in_child(require_aborts);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT);
}

TEST_MAIN(T(check_fails_the_program), T(passing_program_exits_0), T(unknown_test_name_fails),
          T(check_in_a_thread_fails), T(check_in_a_child_fails), T(failures_all_counted),
          T(require_stops_at_once))
