from sb3_reinforce.cli import main

main()
